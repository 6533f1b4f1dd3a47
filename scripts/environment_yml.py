"""Prints environment.yml (for conda users) derived from requirements.txt, the one source of pins."""
import sys
from pathlib import Path

lines = [
    line.strip()
    for line in Path(sys.argv[1]).read_text().splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
print("# Generated from requirements.txt by `make environment.yml`; edit requirements.txt instead.")
print("name: asapnet-repro")
print("channels:\n  - conda-forge")
print("dependencies:\n  - python=3.11\n  - pip\n  - pip:")
for line in lines:
    print(f"      - {line}")
print("      - -e .")
