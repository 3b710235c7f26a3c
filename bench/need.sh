# Sourced by the bench scripts: `need COMMAND PACKAGE` installs the Debian PACKAGE when
# COMMAND is not on the PATH (with sudo unless root).
need() {
  command -v "$1" >/dev/null && return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2"
}
