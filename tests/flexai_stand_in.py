"""A scripted stand-in for the ``flexai`` CLI, for tests only.

The real CLI is a Go binary from FlexAI's own installer and cannot be installed here (nor can
FlexAI's cloud be reached), so tests copy this script onto PATH as ``flexai``. By default it
reproduces the documented behaviour (see ../shared/reference/flexai-platform.md):

- ``auth status`` (exit 1 and "not logged in" when logged out; every other command then fails
  with an "unauthorized" error);
- ``secret create NAME`` reads the value from stdin; ``secret list`` prints a text table;
  ``secret inspect NAME`` exits 0 when the secret exists, 1 when not;
- ``inference serve NAME ... -- ...`` prints the API key once, on an ``API Key: <key>`` line among
  other output (or whatever ``serve_output`` the scenario gives); serving a name that exists fails
  with "already exists";
- ``inference inspect NAME -j`` prints JSON whose ``runtime.status`` and ``config.endpointUrl``
  step through the scenario's ``statuses`` (the last one repeats), with extra unknown keys;
- ``inference logs NAME``, ``list``, ``--help`` (listing only the scenario's ``verbs``), ``stop``,
  ``delete``, ``scale NAME --min-replicas N --max-replicas M``.

`SCENARIOS` below holds one scenario per behaviour the public material leaves open, each tagged
**documented** (with its source) or **assumed variant** (our guess at what a real CLI may do).

Its folder (``FAKE_FLEXAI_HOME``) holds ``scenario.json`` (what to do), ``state.json`` (what
exists) and ``calls.jsonl`` (each call's argv and the exact stdin it received).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

DEFAULT_VERBS = ["inspect", "list", "logs", "serve", "stop", "delete", "scale"]
DEFAULT_SECRET_VERBS = ["create", "inspect", "list"]
# A UUID and a long opaque token that are NOT the key: they must never be shown either.
OTHER_UUID = "9d3e2c1b-8a7f-4e6d-b5c4-a3b2c1d0e9f8"
OTHER_TOKEN = "req_7Qm2Vx9Lp4Rt8Zk3Hn6B"
BOX_TABLE = (
    "Creating inference endpoint '{name}'...\n"
    "┏━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓\n"
    "┃ Name              ┃ API Key                                ┃\n"
    "┡━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩\n"
    "│ {name} │ {key} │\n"
    "└───────────────────┴────────────────────────────────────────┘\n"
)

#: name -> (tag, settings). Settings are the keys `main` reads from scenario.json; "{key}" in an
#: output stands for the endpoint's API key, "{name}" for its name.
SCENARIOS: dict[str, tuple[str, dict]] = {
    "documented": (
        "documented: `API Key: <key>` line, `inspect -j` from enqueued to running "
        "(FlexAI text-to-audio blueprint; flexai-platform.md, Serving/Inspecting)",
        {},
    ),
    "key_on_stderr": ("assumed variant: the whole serve output on stderr", {"serve_stream": "stderr"}),
    "key_in_box_table": (
        "assumed variant: the key in a box-drawn table column (rich/lipgloss style)",
        {"serve_output": BOX_TABLE},
    ),
    "key_with_ansi_colours": (
        "assumed variant: colours despite NO_COLOR",
        {
            "serve_output": "\x1b[1;32m✔ Endpoint created\x1b[0m\n"
            "\x1b[33mAPI Key:\x1b[0m \x1b[1m{key}\x1b[0m\n"
        },
    ),
    "key_label_access_key": (
        "assumed variant: labelled 'Access Key'",
        {"serve_output": "Access Key: {key}\n"},
    ),
    "key_label_api_key_snake": ("assumed variant: labelled 'api_key='", {"serve_output": "api_key={key}\n"}),
    "key_label_bare_key": ("assumed variant: labelled 'Key'", {"serve_output": "Created.\nKey: {key}\n"}),
    "key_after_english_word": (
        "assumed variant: an English word after 'API Key:', the key on a later line",
        {"serve_output": "API Key: Unavailable here\nYour key:\n    {key}\nSave it now.\n"},
    ),
    "serve_fails_after_key": (
        "assumed variant: serve prints the key, then exits 1 (a client-side timeout)",
        {
            "serve_output": "API Key: {key}\nError: timed out waiting for the endpoint to be scheduled\n",
            "serve_exit": 1,
        },
    ),
    "serve_keeps_running": (
        "assumed variant: serve prints the key, then keeps following the logs and never exits",
        {"serve_keeps_running": 40},
    ),
    "serve_fails_without_key": (
        "assumed variant: serve exits 1 with ids in its output but no key; nothing is created",
        {
            "serve_output": f"Error: quota exceeded for organization {OTHER_UUID} (request {OTHER_TOKEN})\n",
            "serve_exit": 1,
            "serve_creates": False,
        },
    ),
    "no_key_in_output": (
        "assumed variant: serve exits 0 but the key is not in a recognisable form",
        {
            "serve_output": (
                "Endpoint created: https://inference-" + OTHER_UUID + "-1a2b3c4d.platform.flex.ai\n"
                f"Key: (see the console)\nrequest {OTHER_TOKEN}\n"
            )
        },
    ),
    "delete_prompts_with_flag": (
        "assumed variant: delete asks [y/N] and aborts on EOF with exit 0; --help lists -f, --force "
        "(whether it prompts is undocumented; checkpoint delete has no such flag, docs.flex.ai)",
        {"delete_prompt": True, "delete_flags": ["-f, --force   Skip the confirmation prompt"]},
    ),
    "delete_prompts_without_flag": (
        "assumed variant: delete asks [y/N], aborts on EOF with exit 0, and offers no flag",
        {"delete_prompt": True},
    ),
    "delete_lingers_deleting": (
        "assumed variant: after delete, inspect shows 'deleting' for a while",
        {"delete_lingers": 3},
    ),
    "cobra_missing_verbs": (
        "documented: cobra prints help and exits 0 on an unknown subcommand (spf13/cobra #1156, "
        "#2034); assumed: this CLI has no inference stop/delete and no secret inspect; "
        "scale is documented (docs.flex.ai cli/commands/inference/scale)",
        {
            "cobra": True,
            "verbs": ["inspect", "list", "logs", "serve", "scale"],
            "secret_verbs": ["create", "list"],
        },
    ),
    "auth_exit0_not_authenticated": (
        "assumed variant: auth status exits 0 and says 'Not authenticated'",
        {"auth_output": "Not authenticated. Please log in with: flexai auth login", "auth_exit": 0},
    ),
    "auth_token_refreshed": (
        "assumed variant: auth status exits 0 after refreshing the token",
        {"auth_output": "Token refreshed. Logged in as ada@example.com; expires in 11h59m"},
    ),
    "status_rejected": (
        "documented for training: 'rejected' is terminal (docs.flex.ai cli/commands/training); "
        "inferred for inference",
        {"statuses": [["enqueued", None], ["rejected", None]], "logs": ["quota: no H100 available"]},
    ),
    "status_stop_in_progress": (
        "documented for training: 'stop in progress' (docs.flex.ai cli/commands/training); "
        "assumed: someone stops the endpoint while we wait",
        {"statuses": [["enqueued", None], ["stop in progress", None]]},
    ),
    "unknown_status": (
        "assumed variant: a status word we do not know before running",
        {"statuses": [["enqueued", None], ["warming up", None], ["running", "{url}"]]},
    ),
    "inspect_fails_after_create": (
        "documented: the URL is 'populated after a few seconds' and scripts sleep 10 s before "
        "inspect (flexai-platform.md); assumed: inspect says not found twice right after create",
        {"inspect_failures": 2},
    ),
    "stop_does_nothing": (
        "assumed variant: stop exits 0 but the endpoint keeps running (used by the stop tests)",
        {"stop_noop": True},
    ),
    "truncated_table_cells": (
        "assumed variant: list tables with ┃ bars and cells cut to 10 characters with …",
        {"truncate": 10, "bar": "┃"},
    ),
    "serve_name_already_exists": (
        "assumed variant: list lags behind (misses the endpoint) and serve fails 'already exists'",
        {"list_hides": True},
    ),
}


def home() -> Path:
    return Path(os.environ["FAKE_FLEXAI_HOME"])


def load(name: str, default):
    path = home() / name
    return json.loads(path.read_text()) if path.exists() else default


def save_state(state: dict) -> None:
    (home() / "state.json").write_text(json.dumps(state))


def fail(message: str, code: int = 1):
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(code)


def table(header: list[str], rows: list[list[str]], scenario: dict) -> str:
    width = scenario.get("truncate")
    bar = f" {scenario.get('bar', '│')} "

    def cell(text: str) -> str:
        return text if not width or len(text) <= width else text[: width - 1] + "…"

    lines = [bar.join(header), "─" * 40] + [bar.join(cell(text) for text in row) for row in rows]
    return "\n".join(lines)


def group_help(group: str, verbs: list[str]) -> str:
    commands = "\n".join(f"  {verb:<11} {verb.capitalize()} {group} resources" for verb in verbs)
    return (
        f"Manage {group}\n\nUsage:\n  flexai {group} [command]\n\n"
        f"Available Commands:\n{commands}\n\nFlags:\n  -h, --help   help for {group}\n"
    )


def verb_help(verb: str, flags: list[str]) -> str:
    listed = "".join(f"  {flag}\n" for flag in flags)
    return (
        f"{verb.capitalize()} an inference endpoint\n\nUsage:\n  flexai inference {verb} NAME [flags]\n\n"
        + (f"Flags:\n{listed}  -h, --help   help for {verb}\n")
    )


def unknown(group: str, verb: str, verbs: list[str], scenario: dict):
    if scenario.get("cobra"):  # cobra: help for the parent command, exit 0
        print(group_help(group, verbs))
        sys.exit(0)
    fail(f'unknown command "{verb}" for "flexai {group}"')


def main(argv: list[str]) -> None:
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    with open(home() / "calls.jsonl", "a") as calls:
        calls.write(json.dumps({"argv": argv, "stdin": stdin, "time": time.time()}) + "\n")
    scenario = load("scenario.json", {})
    state = load("state.json", {"secrets": {}, "endpoints": {}})
    verbs = scenario.get("verbs", DEFAULT_VERBS)
    secret_verbs = scenario.get("secret_verbs", DEFAULT_SECRET_VERBS)

    if argv == ["--version"]:
        print("flexai version 0.0.0-stand-in")
        return
    if argv[:2] == ["auth", "status"]:
        if "auth_output" in scenario:
            print(scenario["auth_output"])
            sys.exit(scenario.get("auth_exit", 0))
        if scenario.get("logged_in", True):
            print("Logged in as ada@example.com (organization: example)")
            return
        fail("not logged in. Run 'flexai auth login' to log in.")
    if not scenario.get("logged_in", True) or scenario.get("auth_exit", 0) != 0:
        fail("unauthorized: please log in with `flexai auth login`")
    if "Not authenticated" in scenario.get("auth_output", ""):
        fail("unauthorized: please log in with `flexai auth login`")

    match argv:
        case ["secret", "--help" | "-h"]:
            print(group_help("secret", secret_verbs))
        case ["secret", verb, *_] if verb not in secret_verbs:
            unknown("secret", verb, secret_verbs, scenario)
        case ["secret", "create", name]:
            if not stdin:
                fail("no secret value given")
            if name in state["secrets"]:
                fail(f"secret '{name}' already exists")
            state["secrets"][name] = stdin
            save_state(state)
            print(f"Secret '{name}' created")
        case ["secret", "inspect", name]:
            if name not in state["secrets"]:
                fail(f"secret '{name}' not found")
            print(json.dumps({"metadata": {"name": name}, "createdAt": "2025-01-01T00:00:00Z"}))
        case ["secret", "list"]:
            rows = [[name, "1 minute ago"] for name in state["secrets"]]
            print(table(["NAME", "CREATED"], rows, scenario))
        case ["inference", "--help"] | ["inference", "-h"]:
            print(group_help("inference", verbs))
        case ["inference", verb, *_] if verb not in verbs:
            unknown("inference", verb, verbs, scenario)
        case ["inference", verb, "--help" | "-h"]:
            print(verb_help(verb, scenario.get("delete_flags", []) if verb == "delete" else []))
        case ["inference", "list"]:
            rows = [[name, "flexserve", "enqueued"] for name in state["endpoints"]]
            print(table(["NAME", "RUNTIME", "STATUS"], [] if scenario.get("list_hides") else rows, scenario))
        case ["inference", "serve", name, *rest]:
            serve(name, rest, scenario, state)
        case ["inference", "inspect", name, "-j" | "--json"]:
            inspect(name, scenario, state)
        case ["inference", "logs", name]:
            print("\n".join(scenario.get("logs", [f"{name}: starting flexserve", f"{name}: loading model"])))
        case ["inference", "scale", name, "--min-replicas", low, "--max-replicas", high]:
            if name not in state["endpoints"]:
                fail(f"inference endpoint '{name}' not found")
            state["endpoints"][name]["replicas"] = [int(low), int(high)]
            save_state(state)
            print(f"Inference endpoint '{name}' scaled (min {low}, max {high})")
        case ["inference", "stop" | "delete" as verb, *flags, name]:
            stop_or_delete(verb, flags, name, scenario, state, stdin)
        case _:
            fail(f"unknown command {' '.join(argv)!r}")


def serve(name: str, rest: list[str], scenario: dict, state: dict) -> None:
    secret = rest[rest.index("--hf-token-secret") + 1] if "--hf-token-secret" in rest else None
    if secret and secret not in state["secrets"]:
        fail(f"secret {secret!r} not found")
    if name in state["endpoints"]:
        fail(f"inference endpoint '{name}' already exists")
    if scenario.get("serve_creates", True):
        state["endpoints"][name] = {"inspections": 0, "arguments": rest}
        save_state(state)
    key = scenario.get("api_key") or str(uuid.uuid4())
    default_output = (
        f"Creating inference endpoint '{name}'...\n"
        "Inference endpoint created successfully!\n"
        f"API Key: {key}\n"
        "Save this key: it will not be shown again.\n"
    )
    text = scenario.get("serve_output", default_output).replace("{key}", key).replace("{name}", name)
    stream = scenario.get("serve_stream", "split")
    if stream == "stderr":
        print(text, end="", file=sys.stderr, flush=True)
    else:  # part of it on stderr: the official scripts capture 2>&1 for a reason
        head, _, tail = text.partition("\n")
        print(head, file=sys.stderr, flush=True)
        print(tail, end="", flush=True)
    if scenario.get("serve_keeps_running"):
        print("Following logs (Ctrl-C to stop)...", flush=True)
        time.sleep(scenario["serve_keeps_running"])
    sys.exit(scenario.get("serve_exit", 0))


def inspect(name: str, scenario: dict, state: dict) -> None:
    endpoint = state["endpoints"].get(name)
    if endpoint is None:
        fail(f"inference endpoint '{name}' not found")
    endpoint["inspections"] += 1
    save_state(state)
    if endpoint["inspections"] <= scenario.get("inspect_failures", 0):
        fail(f"inference endpoint '{name}' not found")
    if "inspect_output" in scenario:
        print(scenario["inspect_output"])
        return
    if "deleting" in endpoint:  # deleted, but still visible for a few inspections
        endpoint["deleting"] -= 1
        if endpoint["deleting"] <= 0:
            del state["endpoints"][name]
        save_state(state)
        status, url = "deleting", None
    elif endpoint.get("stopped"):
        status, url = "stopped", None
    else:
        statuses = scenario.get("statuses", [["running", "http://127.0.0.1:9"]])
        index = min(endpoint["inspections"] - 1 - scenario.get("inspect_failures", 0), len(statuses) - 1)
        status, url = statuses[index]
        url = url.replace("{url}", scenario.get("url", "")) if isinstance(url, str) else url
    document = {
        "kind": "InferenceEndpoint",
        "metadata": {"name": name, "id": str(uuid.uuid4()), "labels": {}},
        "config": {"endpointUrl": url, "runtime": "flexserve", "device": {"accels": 1}},
        "runtime": {"status": status, "replicas": {"ready": 0}, "updatedAt": "2025-01-01T00:00:00Z"},
        "somethingNew": [1, 2, 3],
    }
    print(json.dumps(document, indent=2))


def stop_or_delete(verb: str, flags: list[str], name: str, scenario: dict, state: dict, stdin: str) -> None:
    accepted = {part for flag in scenario.get("delete_flags", []) for part in flag.split(",")[:2]}
    accepted = {part.split()[0] for part in accepted if part.strip().startswith("-")}
    for flag in flags:
        if verb != "delete" or flag not in accepted:
            fail(f"unknown flag: {flag}")
    if name not in state["endpoints"]:
        fail(f"inference endpoint '{name}' not found")
    if verb == "delete" and scenario.get("delete_prompt") and not flags:
        print(f"Delete inference endpoint '{name}'? This cannot be undone [y/N]: ", end="")
        if stdin.strip().lower() not in ("y", "yes"):
            print("Aborted.")  # exit 0, nothing deleted
            return
    if verb == "stop" and scenario.get("stop_noop"):
        pass  # exits 0, yet the endpoint keeps running
    elif verb == "stop":
        state["endpoints"][name]["stopped"] = True
    elif scenario.get("delete_lingers"):
        state["endpoints"][name]["deleting"] = scenario["delete_lingers"]
    else:
        del state["endpoints"][name]
    save_state(state)
    print(f"Inference endpoint '{name}' {dict(stop='stopped', delete='deleted')[verb]}")


if __name__ == "__main__":
    main(sys.argv[1:])
