from maildir_jmap.cli import main

raise SystemExit(main())
