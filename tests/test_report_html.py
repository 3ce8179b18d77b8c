"""report.html in a real browser: headless Chromium (Debian's ``chromium`` package) loads the file and
every embedded figure decodes to the size of the PNG the report wrote (oracle: the PNG headers read
here), and a screenshot of the page is not blank."""
from __future__ import annotations

import json
import math
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainlab.report import build_report

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no headless browser: apt-get install -y chromium"),
]

PROBE = """<script>window.addEventListener("load", function () {
  var sizes = Array.prototype.map.call(document.images, function (i) {
    return i.complete ? [i.naturalWidth, i.naturalHeight] : [0, 0]; });
  var out = document.createElement("pre"); out.id = "figure-probe"; out.textContent = JSON.stringify(sizes);
  document.body.appendChild(out);
});</script>"""


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three tasks × three trainers × four seeds, a learning-rate axis swept for one trainer."""
    rng = np.random.default_rng(1)
    runs, hist = [], []
    for task in ("t1", "t2", "t3"):
        for label, top, lrs in (("adam", 0.9, (0.01,)), ("sgd", 0.8, (0.1, 0.01)), ("shade", 0.7, (math.nan,))):
            for lr in lrs:
                for seed in range(4):
                    run_id = f"{task}-{label}-{lr}-{seed}"
                    curve = np.clip(top * (1 - np.exp(-np.arange(6) / 2)) + rng.normal(0, 0.02, 6), 0, 1)
                    hist += [{"run_id": run_id, "epoch": e, "val_metric": curve[e], "sample_evals": 100 * (e + 1),
                              "seconds": 0.1 * (e + 1)} for e in range(6)]
                    runs.append({"run_id": run_id, "task": task, "model": "mlp1", "label": label, "trainer": label,
                                 "trainer_options.lr": lr, "seed": seed, "status": "ok", "metric": "accuracy",
                                 "final_test_metric": curve[-1]})
    return pd.DataFrame(runs), pd.DataFrame(hist)


def png_size(path: Path) -> list[int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return [width, height]


def test_report_html_renders_every_figure_in_chromium(tmp_path):
    runs, hist = frames()
    md = build_report(runs, hist, tmp_path / "rep", formats=("png",), table_formats=("csv",))
    page = md.parent / "report.html"
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md.read_text())
    assert len(figures) >= 8  # curves ×3 per task, parameter plot, CD diagram
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'id="figure-probe">([^<]*)<', dom)
    assert found, dom[-2000:]
    assert json.loads(found.group(1)) == [png_size(md.parent / f) for f in figures]
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, "--window-size=1200,3000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3].reshape(-1, 3)
    assert len(np.unique((pixels * 255).round().astype(int), axis=0)) > 50  # text, tables and plotted colours
    # sortable: the inline script registered a click handler on every header cell
    assert "querySelectorAll(\"table\")" in page.read_text() and dom.count("click to sort") >= 1
