from monagent.cli import main

raise SystemExit(main())
