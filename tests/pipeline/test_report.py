"""report.html as a person sees it: rendered by a real headless Chromium (Debian's package, installed
by .ci/setup.d/40-chromium.sh): label names, the split x class table, each gate's verdict, the
montage of stored and augmented images, quarantine examples per reason and the masking counts."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from PIL import Image

from pipeline import report
from tests.conftest import REPO

SETUP = REPO / ".ci" / "setup.d" / "40-chromium.sh"
# Loads report.html in a frame and lists what the browser rendered: tables, images and their decoded size.
PROBE = """<!doctype html><html><body><pre id="out">loading</pre>
<iframe id="f" src="report.html" width="1280" height="2000"></iframe><script>
document.getElementById("f").onload = () => {
  const d = document.getElementById("f").contentDocument;
  const text = sel => Array.from(d.querySelectorAll(sel)).map(e => e.textContent);
  document.getElementById("out").textContent = JSON.stringify({
    h2: text("h2"), gates: text("table.gates tr"), split: text("table.split-by-label tr"),
    quarantine: text("h3"), masking: d.body.textContent.includes("no personal data masking configured"),
    images: Array.from(d.images).map(i => [i.alt, i.naturalWidth, i.naturalHeight])});
};</script></body></html>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and SETUP.exists():
        subprocess.run(["bash", str(SETUP)], capture_output=True, timeout=900)
        found = shutil.which("chromium")
    if found is None:
        pytest.skip(f"chromium is not installed and {SETUP.name} could not install it (needs apt-get as root)")
    return found


def _browser(chromium: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           *args], capture_output=True, text=True, timeout=timeout)


def test_report_renders_in_a_real_browser(staged_prepare, tmp_path):
    chromium = _chromium()
    folder = staged_prepare.prepared.ref.path
    shutil.copy(folder / "report.html", tmp_path / "report.html")
    (tmp_path / "probe.html").write_text(PROBE)
    shot = tmp_path / "report.png"
    done = _browser(chromium, f"--screenshot={shot}", "--window-size=1280,2000", (tmp_path / "report.html").as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1280, 2000) and len(img.convert("L").getcolors(1 << 16)) > 20   # not a blank page
    dom = _browser(chromium, "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
                   (tmp_path / "probe.html").as_uri())
    seen = json.loads(dom.stdout.split('<pre id="out">', 1)[1].split("</pre>", 1)[0].replace("&quot;", '"'))
    assert {"Quality gates", "Split x class", "Images", "Quarantine examples", "Masking"} <= set(seen["h2"])
    assert [row.endswith("pass") for row in seen["gates"][1:]] == [True, True]
    header, *splits = seen["split"]
    assert header.startswith("split0123456789") and [r[:3] for r in splits] == ["tra", "val", "tes", "all"]
    assert seen["quarantine"] == ["wrong_field_count"] and seen["masking"]
    images = {alt: (w, h) for alt, w, h in seen["images"]}
    for alt in ("label distribution", "stored train images (the first of the version)", "their augmented copies"):
        assert images[alt][0] > 100 and images[alt][1] > 50, images   # decoded by the browser, not broken


def test_report_json_holds_the_split_table_gates_and_masking(staged_prepare):
    built = json.loads((staged_prepare.prepared.ref.path / "report.json").read_text())
    m = staged_prepare.prepared.manifest
    assert {s: sum(v.values()) for s, v in built["split_by_label"].items()} == {
        "train": m["n_train"], "val": m["n_val"], "test": m["n_test"]}
    assert [g["gate"] for g in built["gates"]] == ["max_quarantined_fraction", "min_rows_per_class"]
    assert built["gates"][0]["value"] == pytest.approx(1 / 121, rel=1e-3) and built["masked"] == {}


@pytest.mark.parametrize("failed, verdicts", [
    (None, [True, True]),                              # nothing failed
    ("min_rows_per_class", [True, False]),             # the recorded verdict names the gate that failed
])
def test_gate_rows(failed, verdicts):
    manifest = {"records_in": 10, "quarantined": {"out_of_range": 1}, "label_counts": {"a": 5, "b": 4},
                "quality": {"gate": failed, "gates": {"max_quarantined_fraction": 0.5, "min_rows_per_class": 4}}}
    assert [g["passed"] for g in report.gate_rows(manifest)] == verdicts


def test_masked_counts_come_from_the_cleaning_counts():
    assert report.masked_counts({"cleaning": {"masked_email": 3, "values_imputed": 1}}) == {"email": 3}
