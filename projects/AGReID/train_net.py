#!/usr/bin/env python
"""Train / evaluate AG-ReID with fast-reid (thin, like fast-reid's own projects).

    python projects/AGReID/train_net.py --config-file configs/Demo/agreid_demo.yml
    python projects/AGReID/train_net.py label --config-file configs/Demo/agreid_demo.yml
    python projects/AGReID/train_net.py --config-file ... --eval-only MODEL.WEIGHTS model_final.pth
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.join(_HERE, "..", ".."))

from agreid.tools import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
