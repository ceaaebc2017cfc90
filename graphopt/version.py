"""graphopt's version (a module of its own, so that code inside graphopt can read it without importing the
package root, which imports the API and the compiler)."""

__version__ = "0.1.0"
