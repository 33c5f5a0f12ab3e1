"""benchmarks/fidelity.py's report without training: mean ± sample std per variant against a
hand computation, a stage-2-only variant's stage-1 column shown as n/a (it shares the default's
stage 1), a missing seed left out rather than counted, and the bar chart written."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import fidelity  # noqa: E402


def _record(r1, mAP, miou1=None, miou2=0.1, passed=0):
    mech = {"stage2": {"part_miou": miou2, "auroc_weights": 0.7, "auroc_alpha": 0.5,
                       "mean_alpha_visible": 0.4, "mean_alpha_covered": 0.4},
            "bank_log": {"total": [passed]}}
    if miou1 is not None:
        mech["stage1"] = {"part_miou": miou1}
    return {"result": {"Rank-1": r1, "mAP": mAP}, "mechanism": mech}


def test_variant_table_means_and_na(tmp_path):
    records = {
        # R1 80 / 84 / 88: mean 84.0, sample std 4.0; stage-1 mIoU 0.2 / 0.3: 0.250 ± 0.071
        "rganet": [_record(80, 70, 0.2), _record(84, 72, 0.3), _record(88, 74, None)],
        # stage-2-only variant: no stage-1 record at all -> n/a; a missing seed (None) skipped
        "rganet_w_mean": [_record(90, 80, None, passed=3), None, _record(92, 82, None, passed=5)],
        "rganet_csc": [None, None, None],  # nothing ran: no row
    }
    table = fidelity.variant_table(records).splitlines()
    assert len(table) == 4  # header, rule, two rows
    default, mean = table[2], table[3]
    assert "| 3 | 84.0 ± 4.0 | 72.0 ± 2.0 | 0.250 ± 0.071 / 0.100 ± 0.000 |" in default
    assert "| 2 | 91.0 ± 1.4 | 81.0 ± 1.4 | n/a / 0.100 ± 0.000 |" in mean
    assert mean.endswith("| 4 ± 1 |")  # regions passing: 3 and 5

    out = tmp_path / "fidelity.png"
    fidelity.variant_plot(records, str(out))
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
