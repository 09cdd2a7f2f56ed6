#!/bin/sh
# Install an unpacked voicegui bundle for the current user (no root needed):
#   the bundle      -> ~/.local/share/voicegui-app/   (copied; --in-place leaves it where it is)
#   the launcher    -> ~/.local/bin/voicegui          (a symlink to the bundle's executable)
#   the menu entry  -> ~/.local/share/applications/voicegui.desktop
#   the icon        -> ~/.local/share/icons/hicolor/{256x256,scalable}/apps/voicegui.{png,svg}
# Usage: ./install.sh [--in-place] | ./install.sh --uninstall
# XDG_DATA_HOME and HOME are honoured. User data (presets, models, logs) is never touched.
set -eu

BUNDLE=$(cd "$(dirname "$0")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
BIN=$HOME/.local/bin
APP_DIR=$DATA/voicegui-app
ICONS=$DATA/icons/hicolor

uninstall() {
    rm -f "$BIN/voicegui" "$DATA/applications/voicegui.desktop" \
        "$ICONS/256x256/apps/voicegui.png" "$ICONS/scalable/apps/voicegui.svg"
    # only remove a copy this script made (it carries the marker file)
    if [ -f "$APP_DIR/.installed-by-voicegui" ]; then rm -rf "$APP_DIR"; fi
    refresh
    echo "voicegui removed (presets, models and logs are kept)."
}

refresh() {
    command -v update-desktop-database >/dev/null 2>&1 \
        && update-desktop-database -q "$DATA/applications" 2>/dev/null || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 \
        && gtk-update-icon-cache -q -t "$ICONS" 2>/dev/null || true
}

case "${1:-}" in
    --uninstall) uninstall; exit 0 ;;
    --in-place) TARGET=$BUNDLE ;;
    "") TARGET=$APP_DIR ;;
    *) echo "usage: $0 [--in-place | --uninstall]" >&2; exit 2 ;;
esac

if [ ! -x "$BUNDLE/voicegui" ]; then
    echo "$BUNDLE/voicegui not found: run install.sh from inside the unpacked bundle" >&2
    exit 1
fi

mkdir -p "$DATA" "$BIN" "$DATA/applications" "$ICONS/256x256/apps" "$ICONS/scalable/apps"
if [ "$TARGET" != "$BUNDLE" ]; then
    if [ -e "$TARGET" ] && [ ! -f "$TARGET/.installed-by-voicegui" ]; then
        echo "$TARGET exists and was not made by this script; not overwriting it" >&2
        exit 1
    fi
    rm -rf "$TARGET.new"
    cp -a "$BUNDLE" "$TARGET.new"
    : > "$TARGET.new/.installed-by-voicegui"
    rm -rf "$TARGET"
    mv "$TARGET.new" "$TARGET"
fi

ln -sfn "$TARGET/voicegui" "$BIN/voicegui"
RES=$TARGET/_internal/resources/icons
cp "$RES/voicegui.png" "$ICONS/256x256/apps/voicegui.png"
[ -f "$RES/voicegui.svg" ] && cp "$RES/voicegui.svg" "$ICONS/scalable/apps/voicegui.svg"
# Exec needs an absolute path: ~/.local/bin is not on every desktop session's PATH
sed "s|^Exec=.*|Exec=\"$TARGET/voicegui\"|" "$BUNDLE/voicegui.desktop" \
    > "$DATA/applications/voicegui.desktop"
chmod 644 "$DATA/applications/voicegui.desktop"
refresh

echo "voicegui installed: $TARGET"
echo "  menu entry: $DATA/applications/voicegui.desktop"
echo "  command:    $BIN/voicegui (add ~/.local/bin to PATH if it is not there)"
case ":$PATH:" in *":$BIN:"*) ;; *) echo "  note: $BIN is not on your PATH" ;; esac
