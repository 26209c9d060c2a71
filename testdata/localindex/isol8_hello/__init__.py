"""A tiny package served by the tests' own Python package index."""


def greet(name):
    return "hello %s from the local index" % name
