"""Expands a SAM template into the CloudFormation template AWS deploys (JSON on stdout), with the
SAM translator cfn-lint and the SAM CLI use, offline: `python sam-expand.py template.yaml`.

Two stand-ins make it run without AWS, as cfn-lint's own expansion does: local `CodeUri` folders
become an S3 location (what `sam package` uploads them to), and the translator, which needs IAM's
managed policies only for policies named by name (this project names none), gets an empty list.
"""

import datetime
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


def undated(value):
    """`value` with YAML 1.1 dates (an unquoted `Version: 2012-10-17`) back as the text they were:
    CloudFormation reads them as strings."""
    if isinstance(value, dict):
        return {key: undated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [undated(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


class NoManagedPolicies:
    """A managed-policy loader that knows none (the template must use ARNs or statements)."""

    def load(self):
        return {}


def main():
    # The translator asks for a region (for ARNs it builds); any will do for checking.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    if len(sys.argv) != 2:
        sys.exit("usage: sam-expand.py TEMPLATE")
    with open(sys.argv[1], encoding="utf-8") as template:
        fragment = undated(yaml_parse(template.read()))
    for function in [fragment.get("Globals", {}).get("Function", {})] + [
        resource.get("Properties", {})
        for resource in fragment.get("Resources", {}).values()
        if resource.get("Type") == "AWS::Serverless::Function"
    ]:
        if isinstance(function.get("CodeUri"), str) and not function["CodeUri"].startswith("s3://"):
            function["CodeUri"] = "s3://sam-package/code.zip"
    try:
        expanded = transform(fragment, {}, NoManagedPolicies())
    except Exception as error:  # the translator's own errors name the resource and property
        sys.exit(f"{sys.argv[1]}: SAM cannot expand it: {error}")
    json.dump(expanded, sys.stdout, indent=1, sort_keys=True)


main()
