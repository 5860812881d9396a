# Sourced by the scripts that start a server printing `listening on ADDR` (`sockeye serve`,
# `peers serve`) and then need its address.

# Prints the address from the first whole line of LOG that announces it, or nothing yet.
# A line still being written, without its newline, is not read: its address may be cut
# short (`127.0` of `127.0.0.1:PORT`).
listening_address() {
    local line
    while IFS= read -r line; do
        [[ $line == "listening on "* ]] && { echo "${line#listening on }"; return; }
    done < "$1"
    return 0
}
