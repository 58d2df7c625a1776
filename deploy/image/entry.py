# The entry point of pycni's image when scripts/build-image.sh freezes the
# installer with PyInstaller (a bundle without its own interpreter):
#   install-cni [flags]   copy the plugins and a conflist to the host mounts (default)
#   pause                 wait until stopped (the DaemonSet's main container)
#   version               print pycni's version
import sys

from pycni.installcni import image_main

sys.exit(image_main())
