"""Validates rendered Kubernetes manifests offline, object by object, against schemas.

    <tools venv>/bin/python deploy/tools/validate_manifests.py RENDERED.yaml [KUBERNETES_VERSION ...]

- Built-in kinds (Deployment, Service, ConfigMap, PodDisruptionBudget, ...): the Kubernetes
  OpenAPI schemas bundled in the PyPI package kubernetes-validate, in strict mode (an unknown
  field is an error, as `kubectl apply --validate=strict` makes it), for every Kubernetes version
  given (default: the newest the package has).
- Custom resources: the KEDA (ScaledObject, TriggerAuthentication) and prometheus-operator
  (ServiceMonitor) models that cloudcoil generates from those projects' CRDs. The models accept
  and drop unknown fields, so every field of the input must also come back out of the model,
  which makes them strict too.

A kind with neither schema is an error: nothing is let through unchecked. Prints one line per
object and exits 1 when any object fails. Run by tests/tests/deploy.rs (deploy/tools/install
sets up the virtualenv).
"""

import json
import sys

import kubernetes_validate
import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as monitoring

CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring.ServiceMonitor,
}


def unknown_fields(given, understood, path=""):
    """Paths present in `given` but not in `understood` (what the model kept)."""
    found = []
    if isinstance(given, dict):
        if not isinstance(understood, dict):
            return [path or "."]
        for key, value in given.items():
            child = f"{path}.{key}" if path else key
            if key not in understood:
                found.append(child)
            else:
                found.extend(unknown_fields(value, understood[key], child))
    elif isinstance(given, list) and isinstance(understood, list):
        for index, (value, kept) in enumerate(zip(given, understood)):
            found.extend(unknown_fields(value, kept, f"{path}[{index}]"))
    return found


def validate_custom(model, document):
    """Errors of a custom resource against its CRD model, unknown fields included."""
    try:
        # Strict, from JSON as the API server reads it: "6" is no integer.
        parsed = model.model_validate_json(json.dumps(document), strict=True)
    except Exception as error:  # pydantic's ValidationError, with every failing field
        return [str(error)]
    kept = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return [f"{path}: unknown field (not in the {document['kind']} CRD schema)"
            for path in unknown_fields(document, kept)]


def validate_builtin(document, versions):
    """Errors of a built-in object against the Kubernetes schemas, strict."""
    errors = []
    for version in versions:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            location = ".".join(str(part) for part in error.path) or "."
            errors.append(f"Kubernetes {version}: {location}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"no schema for {document.get('apiVersion')} {document.get('kind')} "
                          f"in Kubernetes {version} (and no CRD model)")
    return errors


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path, versions = argv[1], argv[2:] or [kubernetes_validate.utils.latest_version()]
    try:
        with open(path, encoding="utf-8") as file:
            documents = [doc for doc in yaml.safe_load_all(file) if doc is not None]
    except (OSError, yaml.YAMLError) as error:
        print(f"{path}: cannot read the manifests: {error}", file=sys.stderr)
        return 1
    if not documents:
        print(f"{path}: no objects to validate", file=sys.stderr)
        return 1
    failed = 0
    for document in documents:
        if not isinstance(document, dict) or "kind" not in document:
            print(f"FAIL {path}: not a Kubernetes object: {str(document)[:80]}")
            failed += 1
            continue
        name = f"{document['kind']}/{document.get('metadata', {}).get('name', '?')}"
        model = CUSTOM_KINDS.get((document.get("apiVersion"), document["kind"]))
        if model is not None:
            errors = validate_custom(model, document)
        else:
            errors = validate_builtin(document, versions)
        if errors:
            failed += 1
            for error in errors:
                print(f"FAIL {name}: {error}")
        else:
            print(f"ok   {name}")
    print(f"{len(documents) - failed} passed, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
