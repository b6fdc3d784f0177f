from imunban.cli import main

raise SystemExit(main())
