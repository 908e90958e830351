"""A first Strand run from Python: 100 commands on the local default, and a bash_app."""

import strand

with strand.Dfk.local(workers=2) as dfk:
    futures = [dfk.submit_command(f"echo {i}") for i in range(100)]
    print("sum:", sum(int(f.result(timeout=120)) for f in futures))

    @strand.bash_app(dfk=dfk)
    def count(path):
        return f"wc -l < {path}"

    f = count("/etc/passwd")
    print("bash_app exit code:", f.result(timeout=120), "lines:", f.stdout.strip())
