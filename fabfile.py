"""foobar_ops as Fabric tasks: `fab --list`, `fab lb.drain web-01`, `fab deploy -i INVENTORY`.
The tasks live in the library (foobar_ops.cli.fabtasks); this file only names them."""

from foobar_ops.cli.fabtasks import ns

__all__ = ["ns"]
