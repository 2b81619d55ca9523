"""Thin HTTP handlers: parse the request, call the flow, render the answer."""
