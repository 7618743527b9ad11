"""benchmarks/train_quality.py: the report shows mAP beside GAP, so a distilled student that
gains GAP while it loses mAP (issue 22) shows up in the table."""

from __future__ import annotations

from benchmarks import train_quality as train


def _job(gap: float, mean_average_precision: float, mode: str) -> dict:
    role = "teacher" if mode == "teacher" else "student"
    return {
        "mode": mode,
        "seconds": 1.0,
        "teacher_gap": gap if role == "teacher" else 0.6,
        f"{role}_gap": gap,
        "teacher_map": mean_average_precision if role == "teacher" else 0.5,
        f"{role}_map": mean_average_precision,
    }


def _seed(student: tuple, parallel: tuple, serial: tuple) -> dict:
    return {
        "fractions": {"every_n:10": {"mean_fraction": 0.1}},
        "jobs": {
            "teacher": _job(0.6, 0.5, "teacher"),
            "student-every_n10": _job(*student, "student"),
            "parallel-every_n10": _job(*parallel, "parallel"),
            "serial-every_n10": _job(*serial, "serial"),
        },
    }


def test_quality_report_shows_a_distilled_student_that_gains_gap_and_loses_map():
    args = train.build_parser().parse_args(["--views", "every_n:10", "--seeds", "0,1"])
    per_seed = [
        _seed(student=(0.50, 0.40), parallel=(0.52, 0.38), serial=(0.51, 0.36)),
        _seed(student=(0.54, 0.44), parallel=(0.56, 0.42), serial=(0.55, 0.40)),
    ]
    report = train.quality_report(args, per_seed)
    gap_row = next(line for line in report.splitlines() if line.startswith("| every_n:10 | 0.100 |"))
    assert gap_row.endswith("| 0.020 ± 0.000 (2/2 > 0) | 0.010 ± 0.000 (2/2 > 0) |")
    assert "| view | teacher mAP | student mAP | parallel mAP | serial mAP |" in report
    map_row = next(line for line in report.splitlines() if line.startswith("| every_n:10 | 0.500 ± 0.000 |"))
    assert map_row == (
        "| every_n:10 | 0.500 ± 0.000 | 0.420 ± 0.028 | 0.400 ± 0.028 | 0.380 ± 0.028 "
        "| -0.020 ± 0.000 (0/2 > 0) | -0.040 ± 0.000 (0/2 > 0) |"
    )
