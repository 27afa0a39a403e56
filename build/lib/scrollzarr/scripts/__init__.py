"""The command-line programs: each module has ``build_parser()``, ``main(args)`` (the work,
given parsed arguments) and ``entry(argv=None)`` (parse, run, map errors to an exit code),
which the console scripts and the top-level ``*.py`` wrappers call.
"""
