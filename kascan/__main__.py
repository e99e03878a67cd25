from __future__ import annotations

from kascan.cli import main

if __name__ == "__main__":
    main()
