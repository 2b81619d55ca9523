"""The demo prints the portal API key it generated, and the README's curl against the
demo works with it as written (README, "The demo")."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import httpx
import pytest

from tests.live_servers import REPOSITORY, demo_process

README_PORTAL = "http://127.0.0.1:8400"  # the demo's portal, as the README addresses it


def readme_demo_commands() -> list[list[str]]:
    """The curl commands of the README's demo section, one argument list each."""
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## The demo\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    lines = "".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.startswith("curl ")]


def as_request(command: list[str], *, portal_url: str, key: str) -> httpx.Request:
    """A curl command as the request it sends, with $KEY set to `key` and the README's
    portal address moved to `portal_url`. Only the options the README uses are known."""
    arguments = iter(command[1:])
    url, headers, body = "", {}, None
    for argument in arguments:
        if argument == "-s":
            continue
        if argument == "-H":
            name, value = next(arguments).split(":", 1)
            headers[name.strip()] = value.strip().replace("$KEY", key)
        elif argument == "-d":
            body = next(arguments)
        elif argument.startswith(README_PORTAL):
            url = portal_url + argument.removeprefix(README_PORTAL)
        else:
            pytest.fail(f"the README's curl uses {argument!r}, which this test cannot read")
    assert url, "the README's curl names no URL of the demo's portal"
    return httpx.Request("POST" if body is not None else "GET", url, headers=headers,
                         content=body)


def test_the_demo_prints_its_generated_key_and_the_readme_curl_works_with_it(
    tmp_path: Path,
) -> None:
    commands = readme_demo_commands()
    assert commands, "the README's demo section shows no curl command"
    with demo_process(env={}, log_path=tmp_path / "demo.log") as demo:
        printed = re.search(r"portal API key: +(demo_\S+)  \(generated", demo.output())
        assert printed, demo.output()
        portal_url = demo.urls[0]
        with httpx.Client(timeout=10) as client:
            for command in commands:
                answer = client.send(as_request(command, portal_url=portal_url,
                                                key=printed.group(1)))
                assert answer.status_code == 200, answer.text
                assert answer.json()["connectUrl"].startswith(f"{portal_url}/connect?token=")
                # The key is what lets it in: another is refused.
                refused = client.send(as_request(command, portal_url=portal_url,
                                                 key="demo_not-the-printed-key"))
                assert refused.status_code == 401
