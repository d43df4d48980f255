"""Static checks of deploy/ for a machine without Terraform or a container engine.

Terraform: every file parses (python-hcl2); every var., local., resource and data
reference names something declared; every variable is used and has a type and a
description; every output has a description; no variable default looks like a secret.
Compose: the services, their roles and their start order are what the README says.
(The Compose schema, the Dockerfile and the Terraform security rules are checked by
check-jsonschema, hadolint and checkov, run by scripts/check-deploy.)
"""

import glob
import os
import re
import sys

import hcl2
import yaml

ROOT = os.path.dirname(os.path.abspath(__file__))
errors = []


def fail(msg):
    errors.append(msg)


def terraform(folder):
    files = sorted(glob.glob(os.path.join(folder, "*.tf")))
    if not files:
        fail(f"{folder}: no .tf files")
        return
    text = ""
    declared = {"variable": set(), "locals": set(), "resource": set(), "data": set(), "output": set()}
    for f in files + sorted(glob.glob(os.path.join(folder, "*.tfvars.example"))):
        with open(f) as fh:
            src = fh.read()
        try:
            doc = hcl2.loads(src)
        except Exception as e:  # noqa: BLE001 - any parse error is a failure
            fail(f"{f}: does not parse: {e}")
            continue
        if "\t" in src:
            fail(f"{f}: tabs (terraform fmt indents with two spaces)")
        if f.endswith(".tf"):
            text += src
        for block in doc.get("variable", []):
            for name, body in block.items():
                declared["variable"].add(name)
                if "description" not in body:
                    fail(f"variable {name}: no description")
                if "type" not in body:
                    fail(f"variable {name}: no type")
                default = str(body.get("default", ""))
                if re.search(r"(postgres(ql)?://[^\s/]*:[^\s@]*@|ck_admin_[A-Za-z0-9]|whsec_[A-Za-z0-9+/])", default):
                    fail(f"variable {name}: its default looks like a secret")
        for block in doc.get("locals", []):
            declared["locals"].update(block.keys())
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name in named:
                    declared["resource"].add(f"{rtype}.{name}")
        for block in doc.get("data", []):
            for dtype, named in block.items():
                for name in named:
                    declared["data"].add(f"{dtype}.{name}")
        for block in doc.get("output", []):
            for name, body in block.items():
                declared["output"].add(name)
                if "description" not in body:
                    fail(f"output {name}: no description")
    # Strip comments and string-interpolation-free prose before looking for references.
    code = re.sub(r"(?m)^\s*#.*$", "", text)
    used_vars = set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", code))
    for v in sorted(used_vars - declared["variable"]):
        fail(f"var.{v} is used but not declared")
    for v in sorted(declared["variable"] - used_vars):
        fail(f"variable {v} is declared but never used")
    for l in sorted(set(re.findall(r"\blocal\.([a-z_][a-z0-9_]*)", code)) - declared["locals"]):
        fail(f"local.{l} is used but not defined")
    for d in sorted(set(re.findall(r"\bdata\.(aws_[a-z0-9_]+\.[a-z0-9_]+)", code)) - declared["data"]):
        fail(f"data.{d} is used but not declared")
    for r in sorted(set(re.findall(r"(?<![.\w])(aws_[a-z0-9_]+\.[a-z0-9_]+)\b", code))):
        rtype, name = r.split(".")
        # Skip attribute chains of data sources (data.aws_x.y is matched above) and
        # the resource type names in `resource "aws_x" "y"` headers.
        if r not in declared["resource"] and f"data.{r}" not in code:
            fail(f"{r} is referenced but no such resource is declared")
    wanted = {
        "aws_lambda_function.function",
        "aws_sqs_queue.wakeups",
        "aws_sqs_queue.dead_letters",
        "aws_lambda_event_source_mapping.wakeups",
        "aws_cloudwatch_event_rule.sweep",
        "aws_apigatewayv2_api.http",
        "aws_iam_role.function",
        "aws_cloudwatch_log_group.functions",
    }
    for r in sorted(wanted - declared["resource"]):
        fail(f"{r}: missing")
    if "ReportBatchItemFailures" not in code:
        fail("the event source mapping must report partial batch failures")
    if "api_url" not in declared["output"]:
        fail("output api_url: missing")


def compose(path):
    with open(path) as fh:
        doc = yaml.safe_load(fh)
    services = doc.get("services", {})
    for name in ("postgres", "migrate", "api", "worker"):
        if name not in services:
            fail(f"compose: service {name} missing")
    if errors:
        return
    if services["migrate"].get("command") != ["migrate"]:
        fail("compose: migrate must run `corridor migrate`")
    if services["migrate"]["depends_on"]["postgres"]["condition"] != "service_healthy":
        fail("compose: migrate must wait for a healthy PostgreSQL")
    for node, role in (("api", "api"), ("worker", "worker")):
        s = services[node]
        if s["environment"].get("CORRIDOR_ROLE") != role:
            fail(f"compose: {node} must run with CORRIDOR_ROLE={role}")
        if not str(s["environment"].get("DATABASE_URL", "")).startswith("postgres://"):
            fail(f"compose: {node} must use PostgreSQL")
        if s["depends_on"]["migrate"]["condition"] != "service_completed_successfully":
            fail(f"compose: {node} must start after the migrations succeeded")


terraform(os.path.join(ROOT, "aws"))
compose(os.path.join(os.path.dirname(ROOT), "docker-compose.yml"))
if errors:
    for e in errors:
        print("deploy check:", e, file=sys.stderr)
    sys.exit(1)
print("deploy check: Terraform and Compose files are consistent")
