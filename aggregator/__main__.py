from aggregator.cli import console

console()
