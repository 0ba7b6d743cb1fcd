#!/usr/bin/env bash
# Recompile the durabletask .proto files in this directory into the committed Python modules.
#
# Needs grpcio-tools in the interpreter named by $PYTHON (default: python3). The generated
# modules import each other as treadle.server._proto.<name>_pb2, never as top-level modules, so
# they cannot collide with the copies that the Dapr SDK (or anything else) ships. The proto
# file names and the service name (TaskHubSidecarService, no package) stay as upstream: the
# SDK calls /TaskHubSidecarService/<Method>.
#
# The generated code checks at import time that the installed protobuf and grpcio are at least
# the versions it was generated with (see the header of each module).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"

PROTOS=(orchestration.proto attestation.proto history_events.proto orchestrator_actions.proto
        orchestrator_service.proto)

rm -f ./*_pb2.py ./*_pb2.pyi ./*_pb2_grpc.py
"$PYTHON" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. "${PROTOS[@]}"
# Only the service file gets gRPC stubs; the others would be empty modules.
"$PYTHON" -m grpc_tools.protoc -I . --grpc_python_out=. orchestrator_service.proto

"$PYTHON" - <<'PY'
import pathlib
import re

local = {p.stem for p in pathlib.Path(".").glob("*_pb2.py")}
pattern = re.compile(r"^(import|from) (\w+_pb2)( .*)$", re.MULTILINE)


def fix(match: re.Match[str]) -> str:
    keyword, module, rest = match.groups()
    if module not in local:
        return match.group(0)
    if keyword == "import":  # import x_pb2 as alias
        return f"from treadle.server._proto import {module}{rest}"
    return f"from treadle.server._proto.{module}{rest}"  # from x_pb2 import Name


for path in sorted(pathlib.Path(".").glob("*_pb2*.py*")):
    text = path.read_text()
    fixed = pattern.sub(fix, text)
    # The message classes' __module__ must be the real module path too.
    fixed = re.sub(
        r"BuildTopDescriptorsAndMessages\(DESCRIPTOR, '(\w+_pb2)'",
        r"BuildTopDescriptorsAndMessages(DESCRIPTOR, 'treadle.server._proto.\1'",
        fixed,
    )
    if fixed != text:
        path.write_text(fixed)
    leftover = [m.group(0) for m in pattern.finditer(fixed) if m.group(2) in local]
    if any(not line.startswith(("from treadle.", "import treadle.")) for line in leftover):
        raise SystemExit(f"{path}: unrewritten import of a sibling module: {leftover}")
PY
echo "regenerated: $(ls ./*_pb2*.py* | tr '\n' ' ')"
