#!/usr/bin/env python3
"""ci_example.py FILE - print, as a POSIX shell script, what the CI example FILE
(examples/ci/*) makes its platform run in kiln's container: the kiln container's
env and args of a Kubernetes Job, the step script of a Tekton Task (params at
their defaults), a GitLab job's variables and script, the kiln steps of a GitHub
Actions job. The platform's own substitutions are done the way the platform does
them ($(VAR) from the container's env, $(params.X), ${{ github.X }} from the
GITHUB_* variables GitHub also sets); everything else runs as written.
examples_ci.bats substitutes the registry host and volume paths in FILE first.
"""
import os
import re
import shlex
import sys

import yaml


def q(s):
    return shlex.quote(str(s))


def k8s_env(env):
    out, seen = [], {}
    for e in env or []:
        v = re.sub(r"\$\((\w+)\)", lambda m: seen.get(m.group(1), m.group(0)), str(e.get("value", "")))
        seen[e["name"]] = v
        out.append("export %s=%s" % (e["name"], q(v)))
    return out, seen


def job(doc):
    spec = doc["spec"]["template"]["spec"]
    c = next(c for c in spec["containers"] if c["name"] == "kiln")
    lines, seen = k8s_env(c.get("env"))
    args = [re.sub(r"\$\((\w+)\)", lambda m: seen.get(m.group(1), m.group(0)), a) for a in c["args"]]
    return lines + ["exec kiln " + " ".join(q(a) for a in args)]


def tekton(doc, run, ws):
    params = {p["name"]: p.get("default", "") for p in doc["spec"]["params"]}
    params.update({p["name"]: p["value"] for p in (run or {}).get("spec", {}).get("params", [])})

    def sub(s):
        s = re.sub(r"\$\(params\.(\w+)\)", lambda m: str(params[m.group(1)]), s)
        s = re.sub(r"\$\(workspaces\.(\w+)\.path\)", lambda m: "%s/%s" % (ws, m.group(1)), s)
        s = re.sub(r"\$\(workspaces\.(\w+)\.bound\)", lambda m: "true" if m.group(1) == "source" else "false", s)
        return re.sub(r"\$\(results\.(\w+)\.path\)", lambda m: "%s/results/%s" % (ws, m.group(1)), s)

    step = doc["spec"]["steps"][0]
    lines = ["mkdir -p %s/results" % q(ws), "cd %s" % q(sub(step["workingDir"]))]
    lines += ["export %s=%s" % (e["name"], q(sub(str(e["value"])))) for e in step.get("env", [])]
    args = [sub(a) for a in step["args"] if a != "$(params.EXTRA_ARGS[*])"]
    return lines + ["exec " + " ".join(q(a) for a in step["command"] + args)]


def gitlab(doc):
    j = doc["build-image"]
    # GitLab runs the script in the project's directory.
    lines = ["set -e", 'cd "$CI_PROJECT_DIR"'] + ["export %s=%s" % (k, q(v)) for k, v in j.get("variables", {}).items()]
    return lines + list(j["script"])


def github(doc):
    j = doc["jobs"]["build"]

    def sub(s):
        return re.sub(r"\$\{\{\s*(github|secrets)\.(\w+)\s*\}\}",
                      lambda m: "${%s}" % ("GITHUB_TOKEN" if m.group(1) == "secrets" else "GITHUB_" + m.group(2).upper()),
                      s)

    # Steps run in the checked-out workspace.
    lines = ["set -e", 'cd "$GITHUB_WORKSPACE"'] + ["export %s=\"%s\"" % (k, sub(v)) for k, v in j.get("env", {}).items()]
    for step in j["steps"]:
        if "run" in step:
            lines.append(sub(step["run"]))
    return lines


def main():
    path = sys.argv[1]
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    name = os.path.basename(path)
    if name.startswith("kubernetes"):
        lines = job(docs[0])
    elif name.startswith("tekton"):
        lines = tekton(docs[0], docs[1] if len(docs) > 1 else None, os.environ["TEKTON_WS"])
    elif name.startswith("gitlab"):
        lines = gitlab(docs[0])
    elif name.startswith("github"):
        lines = github(docs[0])
    else:
        sys.exit("ci_example.py: unknown example %s" % name)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
