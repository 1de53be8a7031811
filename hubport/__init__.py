"""hubport: port parameter-efficient finetuning modules between T5 hosts, from and to the Hub."""

__version__ = "0.1.0"
