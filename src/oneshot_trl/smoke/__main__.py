"""`python -m oneshot_trl.smoke`: the GPU smoke's command line (oneshot_trl.smoke.run)."""

import sys

from oneshot_trl.smoke.run import main

if __name__ == "__main__":
    sys.exit(main())
