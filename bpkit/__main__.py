from bpkit.cli import run

run()
