import pytest
import torch  # a hard dependency: a broken install fails here instead of skipping every torch test


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
