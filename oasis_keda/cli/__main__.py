"""``python -m oasis_keda.cli``: the ``oasis-keda`` command."""

from oasis_keda.cli import main

main()
