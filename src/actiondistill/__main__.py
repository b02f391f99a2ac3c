from actiondistill.cli import main

raise SystemExit(main())
