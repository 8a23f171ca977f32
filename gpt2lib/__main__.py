from gpt2lib.cli import main

raise SystemExit(main())
