"""benchmarks/lowlight_speed.py: whole network names (a long genotype path is not cut), one table of
inference variants, one-line errors for variants the device cannot run."""
import shutil

import pytest

from benchmarks.lowlight_speed import main
from restoration.lowlight.genotype import RUAS_REFERENCE_PATH


def test_searched_row_shows_the_whole_genotype_path(tmp_path, capsys):
    path = tmp_path / "runs" / "search-lowlight-with-a-long-folder-name" / "genotype.json"
    path.parent.mkdir(parents=True)
    shutil.copy(RUAS_REFERENCE_PATH, path)
    assert main(["--genotype", str(path), "--height", "8", "--width", "8", "--repeats", "1", "--warmup", "0",
                 "--device", "cpu", "--no-variants"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert any(r.startswith(f"searched ({path})  ") for r in rows), rows
    assert len({len(r) for r in rows[1:]}) == 1  # header, rule and rows line up


def test_variant_table_has_images_per_second_threads_and_device(capsys):
    assert main(["--height", "8", "--width", "8", "--repeats", "1", "--warmup", "0", "--device", "cpu",
                 "--threads", "1", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "cpu, 1 threads" in out.splitlines()[0]
    table = out[out.index("\nvariant"):].strip().splitlines()
    assert table[0].split()[:5] == ["variant", "setup", "s", "ms/image", "images/s"]
    names = [row.split()[0] for row in table[2:]]
    assert names == ["eager", "channels-last", "bf16"]  # --quick: every uncompiled variant a CPU runs
    assert len({len(r) for r in table}) == 1


@pytest.mark.parametrize("flags,message", [(["--cuda-graph"], "--cuda-graph captures CUDA kernels"),
                                           (["--amp", "fp16"], "use --amp bf16"),
                                           (["--freeze"], "pass --compile too")])
def test_variants_a_cpu_cannot_run_are_one_line_errors(capsys, flags, message):
    assert main(["--device", "cpu", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
