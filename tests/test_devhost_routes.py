"""devhost's ASP.NET-style route templates: what matches, what it yields, and which route wins."""

from __future__ import annotations

import pytest

from devhost.routes import RouteTable, RouteTemplateError, compile_route


def table() -> RouteTable:
    routes = RouteTable()
    routes.add("jobs", {"GET", "POST"}, "jobs")
    routes.add("jobs/{instance_id}", {"GET"}, "read")
    routes.add("jobs/{instance_id}", {"DELETE"}, "delete")
    routes.add("jobs/summary", {"GET"}, "summary")
    return routes


@pytest.mark.parametrize(("path", "method", "expected"), [
    ("jobs", "GET", ("jobs", {})),
    ("jobs", "post", ("jobs", {})),
    ("/JOBS/", "GET", ("jobs", {})),  # literals are case-insensitive; a trailing slash is ignored
    ("jobs/abc123", "GET", ("read", {"instance_id": "abc123"})),
    ("jobs/abc123", "DELETE", ("delete", {"instance_id": "abc123"})),
    ("jobs/summary", "GET", ("summary", {})),  # a literal segment beats a parameter
    ("jobs/a%20b", "GET", ("read", {"instance_id": "a b"})),  # values are URL-decoded
    ("jobs/a%2Fb", "GET", ("read", {"instance_id": "a/b"})),  # an encoded slash stays inside its segment
])
def test_matching(path, method, expected):
    assert table().match(path, method) == expected


@pytest.mark.parametrize(("path", "method"), [
    ("jobs", "DELETE"),  # no route for the method
    ("jobs/abc", "POST"),
    ("jobs/a/b", "GET"),  # a parameter does not span segments
    ("job", "GET"),
    ("jobsx", "GET"),
])
def test_no_match(path, method):
    assert table().match(path, method) is None


def test_optional_constrained_and_catch_all_parameters():
    assert compile_route("items/{id:int?}").match("items") == {}
    assert compile_route("items/{id:int?}").match("items/42") == {"id": "42"}
    assert compile_route("items/{id:int?}").match("items/x") is None
    assert compile_route("files/{*rest}").match("files/a/b/c.mp4") == {"rest": "a/b/c.mp4"}
    assert compile_route("files/{*rest}").match("files") == {}
    assert compile_route("media/{name}.{ext}").match("media/clip.mp4") == {"name": "clip", "ext": "mp4"}
    assert compile_route("{id:guid}").match("0f8fad5b-d9cb-469f-a165-70867728950e") is not None


def test_a_constrained_parameter_wins_over_a_plain_one():
    routes = RouteTable()
    routes.add("items/{name}", None, "by-name")
    routes.add("items/{id:int}", None, "by-id")
    assert routes.match("items/7", "GET") == ("by-id", {"id": "7"})
    assert routes.match("items/seven", "GET") == ("by-name", {"name": "seven"})


def test_no_methods_means_every_method():
    routes = RouteTable()
    routes.add("hook", None, "hook")
    assert routes.match("hook", "PATCH") == ("hook", {})


@pytest.mark.parametrize(("template", "words"), [
    ("items/{id:regexish}", "constraint 'regexish'"),
    ("files/{*rest}/more", "catch-all parameter must be the last"),
    ("media/{name?}.mp4", "must be a whole segment"),
    ("media/{name", "unbalanced braces"),
])
def test_templates_the_host_would_reject_are_refused_clearly(template, words):
    with pytest.raises(RouteTemplateError, match=words):
        compile_route(template)
