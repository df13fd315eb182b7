"""A scripted stand-in for the ``flexai`` CLI, for tests only.

The real CLI is a Go binary from FlexAI's own installer and cannot be installed here (nor can
FlexAI's cloud be reached), so tests copy this script onto PATH as ``flexai``. It reproduces
the documented behaviour (see ../shared/reference/flexai-platform.md):

- ``auth status`` (exit 1 and "not logged in" when logged out; every other command then fails
  with an "unauthorized" error);
- ``secret create NAME`` reads the value from stdin; ``secret list`` prints a text table;
- ``inference serve NAME ... -- ...`` prints the API key once, on an ``API Key: <key>`` line among
  other output (or whatever ``serve_output`` the scenario gives);
- ``inference inspect NAME -j`` prints JSON whose ``runtime.status`` and ``config.endpointUrl``
  step through the scenario's ``statuses`` (the last one repeats), with extra unknown keys;
- ``inference logs NAME``, ``list``, ``--help`` (listing only the scenario's ``verbs``), ``stop``, ``delete``.

Its folder (``FAKE_FLEXAI_HOME``) holds ``scenario.json`` (what to do), ``state.json`` (what
exists) and ``calls.jsonl`` (each call's argv and the exact stdin it received).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

HOME = Path(os.environ["FAKE_FLEXAI_HOME"])
DEFAULT_VERBS = ["inspect", "list", "logs", "serve", "stop", "delete"]


def load(name: str, default):
    path = HOME / name
    return json.loads(path.read_text()) if path.exists() else default


def save_state(state: dict) -> None:
    (HOME / "state.json").write_text(json.dumps(state))


def fail(message: str, code: int = 1):
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(code)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = [" │ ".join(header), "─" * 40] + [" │ ".join(row) for row in rows]
    return "\n".join(lines)


def inference_help(verbs: list[str]) -> str:
    commands = "\n".join(f"  {verb:<11} {verb.capitalize()} an inference endpoint" for verb in verbs)
    return (
        "Manage inference endpoints\n\nUsage:\n  flexai inference [command]\n\n"
        f"Available Commands:\n{commands}\n\nFlags:\n  -h, --help   help for inference\n"
    )


def main(argv: list[str]) -> None:
    stdin = "" if sys.stdin.isatty() else sys.stdin.read()
    with open(HOME / "calls.jsonl", "a") as calls:
        calls.write(json.dumps({"argv": argv, "stdin": stdin}) + "\n")
    scenario = load("scenario.json", {})
    state = load("state.json", {"secrets": {}, "endpoints": {}})

    if argv == ["--version"]:
        print("flexai version 0.0.0-stand-in")
        return
    if argv[:2] == ["auth", "status"]:
        if scenario.get("logged_in", True):
            print("Logged in as ada@example.com (organization: example)")
            return
        fail("not logged in. Run 'flexai auth login' to log in.")
    if not scenario.get("logged_in", True):
        fail("unauthorized: please log in with `flexai auth login`")

    match argv:
        case ["secret", "create", name]:
            if not stdin:
                fail("no secret value given")
            state["secrets"][name] = stdin
            save_state(state)
            print(f"Secret '{name}' created")
        case ["secret", "list"]:
            print(table(["NAME", "CREATED"], [[name, "1 minute ago"] for name in state["secrets"]]))
        case ["inference", "--help"] | ["inference", "-h"]:
            print(inference_help(scenario.get("verbs", DEFAULT_VERBS)))
        case ["inference", "list"]:
            rows = [[name, "flexserve", "enqueued"] for name in state["endpoints"]]
            print(table(["NAME", "RUNTIME", "STATUS"], rows))
        case ["inference", "serve", name, *rest]:
            secret = rest[rest.index("--hf-token-secret") + 1] if "--hf-token-secret" in rest else None
            if secret and secret not in state["secrets"]:
                fail(f"secret {secret!r} not found")
            state["endpoints"][name] = {"inspections": 0, "arguments": rest}
            save_state(state)
            key = scenario.get("api_key") or str(uuid.uuid4())
            default_output = (
                f"Creating inference endpoint '{name}'...\n"
                "Inference endpoint created successfully!\n"
                f"API Key: {key}\n"
                "Save this key: it will not be shown again.\n"
            )
            text = scenario.get("serve_output", default_output).replace("{key}", key)
            # Part of it on stderr: the official scripts capture 2>&1 for a reason.
            head, _, tail = text.partition("\n")
            print(head, file=sys.stderr, flush=True)
            print(tail, end="")
            sys.exit(scenario.get("serve_exit", 0))
        case ["inference", "inspect", name, "-j" | "--json"]:
            if name not in state["endpoints"]:
                fail(f"inference endpoint '{name}' not found")
            if "inspect_output" in scenario:
                print(scenario["inspect_output"])
                return
            statuses = scenario.get("statuses", [["running", "http://127.0.0.1:9"]])
            index = min(state["endpoints"][name]["inspections"], len(statuses) - 1)
            state["endpoints"][name]["inspections"] += 1
            save_state(state)
            status, url = statuses[index]
            document = {
                "kind": "InferenceEndpoint",
                "metadata": {"name": name, "id": str(uuid.uuid4()), "labels": {}},
                "config": {"endpointUrl": url, "runtime": "flexserve", "device": {"accels": 1}},
                "runtime": {"status": status, "replicas": {"ready": 0}, "updatedAt": "2025-01-01T00:00:00Z"},
                "somethingNew": [1, 2, 3],
            }
            print(json.dumps(document, indent=2))
        case ["inference", "logs", name]:
            print("\n".join(scenario.get("logs", [f"{name}: starting flexserve", f"{name}: loading model"])))
        case ["inference", verb, name] if verb in ("stop", "delete"):
            if verb not in scenario.get("verbs", DEFAULT_VERBS):
                fail(f'unknown command "{verb}" for "flexai inference"')
            if name not in state["endpoints"]:
                fail(f"inference endpoint '{name}' not found")
            if verb == "delete":
                del state["endpoints"][name]
                save_state(state)
            print(f"Inference endpoint '{name}' {dict(stop='stopped', delete='deleted')[verb]}")
        case _:
            fail(f"unknown command {' '.join(argv)!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
