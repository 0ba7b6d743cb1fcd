"""Generated protobuf and gRPC modules of the durabletask sidecar protocol.

Do not edit the ``*_pb2*`` modules: change the ``.proto`` files and run ``regenerate.sh``. The
modules import each other as ``treadle.server._proto.<name>_pb2``; importing this package alone
imports nothing heavy.
"""
