"""benchmarks/lowlight_speed.py prints whole network names (a long genotype path is not cut)."""
import shutil

from benchmarks.lowlight_speed import main
from restoration.lowlight.genotype import RUAS_REFERENCE_PATH


def test_searched_row_shows_the_whole_genotype_path(tmp_path, capsys):
    path = tmp_path / "runs" / "search-lowlight-with-a-long-folder-name" / "genotype.json"
    path.parent.mkdir(parents=True)
    shutil.copy(RUAS_REFERENCE_PATH, path)
    assert main(["--genotype", str(path), "--height", "8", "--width", "8", "--repeats", "1", "--warmup", "0",
                 "--device", "cpu"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert any(r.startswith(f"searched ({path})  ") for r in rows), rows
    assert len({len(r) for r in rows[1:]}) == 1  # header, rule and rows line up
