"""The ground floor: the error tree, shared defaults and pure scoring.

Imports nothing of ruledrive; every other package may import it.
"""
