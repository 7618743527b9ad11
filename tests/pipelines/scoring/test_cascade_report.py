"""pipelines/scoring/cascade_report.py: the fitted cascade's report.html."""

import dataclasses
import json
import re

from pipelines.scoring import cascade as C
from pipelines.scoring import cascade_report
from pipelines.scoring import outputs as out


def test_the_report_holds_each_stages_numbers_as_exact_data_values(cascade_dir):
    directory, threshold = cascade_dir
    spec = C.read_cascade(str(directory))
    page = cascade_report.render_cascade_report(spec, str(directory))
    for i, numbers in enumerate(spec.calibration["stages"]):
        cell = re.search(rf'data-metric="stages\.{i}\.gap" data-value="([^"]+)"', page)
        assert cell and json.loads(cell[1]) == numbers["gap"], i
        read = re.search(rf'data-metric="stages\.{i}\.fraction_read" data-value="([^"]+)"', page)
        assert read and json.loads(read[1]) == numbers["fraction_read"], i
    assert "<script" not in page and page.count("data:image/png;base64,") >= 1


def test_strings_from_the_cascade_are_escaped_and_the_report_lands_in_the_cascade_dir(cascade_dir, tmp_path):
    directory, _ = cascade_dir
    spec = C.read_cascade(str(directory))
    stage = dataclasses.replace(spec.stages[0], model={**spec.stages[0].model, "preset": "<b>x</b>"})
    page = cascade_report.render_cascade_report(dataclasses.replace(spec, stages=(stage, *spec.stages[1:])))
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    copy = tmp_path / "c"
    copy.mkdir()
    path = cascade_report.write_cascade_report(str(copy), spec)
    assert path == str(copy / out.REPORT_FILE) and (copy / out.REPORT_FILE).read_text().startswith("<!")
