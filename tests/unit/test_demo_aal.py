"""The demo's AAL, read from an analysis's outputs directory or an older run's archive.

Covers: the sample mean (SampleType 2) where present, else the analytical mean, summed per
perspective over summary set 1's ALT file, the same from the directory and from its
tar.gz; other files are ignored.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from oasis_keda.runtime.demo.records import read_aal

ALT = "SummaryId,SampleType,MeanLoss\n1,1,10.0\n1,2,12.5\n2,2,7.5\n"
ALT_ANALYTICAL = "SummaryId,SampleType,MeanLoss\n1,1,4.0\n2,1,1.0\n"


def test_aal_from_the_directory_or_its_archive(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "gul_S1_palt.csv").write_text(ALT)
    (outputs / "il_S1_palt.csv").write_text(ALT_ANALYTICAL)
    (outputs / "gul_S2_palt.csv").write_text(ALT)  # summary set 2: not read
    (outputs / "gul_S1_eltcalc.csv").write_text("x\n1\n")
    archive = tmp_path / "outputs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(outputs.iterdir()):
            tar.add(path, arcname=path.name)
    want = {"gul": 20.0, "il": 5.0}
    assert read_aal(outputs) == want
    assert read_aal(archive) == want
