"""`python -m spike2loihi.cli`: the same program as the `spike2loihi` console script."""
from spike2loihi.cli import main

main()
