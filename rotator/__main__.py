from rotator.cli import run

run()
