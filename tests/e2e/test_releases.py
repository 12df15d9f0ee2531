"""The README's canary and blue-green walkthrough, run command by command (root only).

The commands are read from README.md's "Canary and blue-green releases" section, so
the README and this test cannot drift apart: each shell command of the section's
code blocks runs through bash with the test cluster's kubeconfig, and each curl loop
is checked against what the README's comment promises a user sees. Traffic goes
only to the ClusterIP of the Service these commands create (redirected on this
machine by kube-proxy to pods on its bridge).
"""
import collections
import os
import re
import subprocess

import pytest

from support.waiting import wait_for

pytestmark = pytest.mark.root

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
SECTION = "## Canary and blue-green releases"


def section_commands() -> list[str]:
    """The section's shell commands in order; a heredoc stays with its command."""
    text = open(README).read()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"^```\n(.*?)^```$", text[start:end], flags=re.S | re.M)
    commands: list[str] = []
    for block in blocks:
        lines = iter(block.splitlines())
        for line in lines:
            if not line.strip():
                continue
            if "<<'EOF'" in line:
                body = []
                for more in lines:
                    body.append(more)
                    if more == "EOF":
                        break
                line = "\n".join([line] + body)
            commands.append(line)
    return commands


def counts(output: str) -> collections.Counter:
    """`sort | uniq -c` output as {answer: count}."""
    result: collections.Counter = collections.Counter()
    for line in output.splitlines():
        n, _, answer = line.strip().partition(" ")
        result[answer] = int(n)
    return result


def canary_mix(seen: collections.Counter) -> bool:
    """Four pods answer, three v1 and one v2: every request answered, both seen, in
    about the README's proportion. A sample taken while kube-proxy was still adding the
    canary's endpoint (it joins partway through the loop) shows too few v2 answers and
    is taken again; a Service that never spreads that way still fails."""
    return (set(seen) == {"v1", "v2"} and sum(seen.values()) == 100
            and seen["v1"] > seen["v2"] >= 8)


def only(version: str, n: int):
    return lambda seen: seen == {version: n}


# What each curl loop of the section shows once kube-proxy has caught up, in order.
CURL_EXPECTATIONS = [canary_mix, only("v2", 100), only("blue", 20), only("green", 20),
                     only("blue", 20)]


def test_canary_and_blue_green_releases_as_in_the_readme(server, tmp_path):
    kubectl = server
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(kubectl("config", "view", "--raw").stdout)
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    commands = section_commands()
    curls = [c for c in commands if "curl" in c]
    assert len(curls) == len(CURL_EXPECTATIONS), "README section and test out of sync"
    expectations = iter(CURL_EXPECTATIONS)
    seen_by_loop = []

    def bash(command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                              text=True, env=env, timeout=timeout)

    for command in commands:
        assignment = re.fullmatch(r"([A-Z_]+)=(\$\(.*\))", command)
        if assignment:
            name, value = assignment.groups()
            r = bash(f'printf %s "{value}"')
            assert r.returncode == 0 and r.stdout, f"{command}: {r.stderr}"
            env[name] = r.stdout
            continue
        if "curl" in command:
            expected = next(expectations)

            last: list = []

            def answered(command=command, expected=expected, last=last):
                try:
                    seen = counts(bash(command, timeout=30).stdout)
                except subprocess.TimeoutExpired:
                    return None
                last[:] = [seen]
                return seen if expected(seen) else None
            try:
                seen_by_loop.append(wait_for(answered, f"{command!r} to show what the "
                                             "README says", 90, interval=1.0))
            except AssertionError as e:
                slices = kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=web",
                                 "-o", "wide", check=False).stdout
                # what kube-proxy programmed for the Service, to tell its part
                rules = subprocess.run(["nft", "list", "table", "ip", "pyk8s"],
                                       capture_output=True, text=True).stdout
                probe = subprocess.run(["curl", "-sv", "-m", "3", f"http://{env['IP']}/"],
                                       capture_output=True, text=True)
                raise AssertionError(
                    f"{e}; curl showed {last}; slices:\n{slices}\nService IP {env['IP']}: "
                    f"{probe.stdout}{probe.stderr}\nrules:\n"
                    + "\n".join(line for line in rules.splitlines() if "web" in line
                                 or env["IP"] in line)) from None
            continue
        r = bash(command)
        assert r.returncode == 0, f"{command}: {r.stdout}{r.stderr}"

    canary = seen_by_loop[0]
    # roughly 3:1 over 100 requests (expected 75/25; the bounds are >4 sigma away)
    assert canary["v1"] > canary["v2"] >= 8, canary
    names = kubectl("get", "deployments", "-o", "name").stdout.split()
    assert not [n for n in names if n.startswith("deployment.apps/web-")], names
    assert kubectl("get", "service", "web", check=False).returncode != 0
