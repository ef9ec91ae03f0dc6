"""The public names: sorted, importable, documented."""

from __future__ import annotations

import importlib

import quantflow_async


def test_all_is_sorted() -> None:
    assert quantflow_async.__all__ == sorted(quantflow_async.__all__)


def test_every_public_name_imports_and_has_a_docstring() -> None:
    module = importlib.import_module("quantflow_async")
    for name in quantflow_async.__all__:
        value = getattr(module, name)
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_every_error_derives_from_quantflow_error() -> None:
    from quantflow_async import errors

    for name in dir(errors):
        value = getattr(errors, name)
        if (
            isinstance(value, type)
            and issubclass(value, Exception)
            and value.__module__ == errors.__name__
        ):
            assert issubclass(value, errors.QuantFlowError), name


def test_package_ships_type_information() -> None:
    from importlib import resources

    assert resources.files("quantflow_async").joinpath("py.typed").is_file()
