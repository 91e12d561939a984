# Shared by scripts/test and scripts/run: make sure the toolchain and the
# emulators are present, installing what Debian's packages can provide.

apt_updated=""
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "missing $*; install it (needs root)" >&2; return 1
  fi
  [ -n "$apt_updated" ] || { apt-get update -qq >/dev/null; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

need_go() {
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null 2>&1 || { echo "Go 1.26 is required (https://go.dev/dl)" >&2; exit 1; }
}

need_emulators() {
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless || {
    echo "Java 17 is required by the Firestore and Pub/Sub emulators" >&2; exit 1; }
  if ! command -v gcloud >/dev/null 2>&1; then
    echo "google-cloud-cli is required, with its Firestore and Pub/Sub emulators" >&2; exit 1
  fi
  local sdk
  sdk=$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null)
  for c in cloud-firestore-emulator pubsub-emulator; do
    if [ ! -d "$sdk/platform/$c" ]; then
      apt_install "google-cloud-cli-${c/cloud-firestore-emulator/firestore-emulator}" 2>/dev/null ||
        gcloud components install --quiet "$c" >/dev/null 2>&1 || {
        echo "the gcloud component $c is missing; install it with 'gcloud components install $c'" >&2; exit 1; }
    fi
  done
}

# The browser test drives Debian's headless Chromium through ChromeDriver.
need_browser() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver || {
      echo "the browser test needs Debian's chromium and chromium-driver" >&2; exit 1; }
  fi
}
