from actiondistill.cli import main

if __name__ == "__main__":  # worker processes (forkserver/spawn) re-import this module
    raise SystemExit(main())
