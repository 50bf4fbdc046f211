"""function_app's functions as the worker indexes them, for every test that needs them.

`app.get_functions()` may run only once per process (a second call reports every function as a
duplicate), so all tests share this one cached index.
"""

from __future__ import annotations

from functools import cache


@cache
def app_functions() -> dict:
    import function_app

    return {function.get_function_name(): function for function in function_app.app.get_functions()}
