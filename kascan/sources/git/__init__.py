"""Git sources: the history of a repository (every blob once, then attribution), its staged
change, a range of commits; the repository itself is treated as hostile (:mod:`.process`).

    process.py   the one git child environment, safe settings, spawning and reaping
    repo.py      finding or cloning a repository, revisions
    blobstream.py  every blob of the object database in pack order
    blobs.py     named blobs through one cat-file --batch
    history.py   History: the blobs, then the attribution walk (paths and introducing commits)
    patch.py     the lines (and binary objects) a change adds: staged, a range, a push
    target.py    one repository to scan as the command line names it: its config and sources
"""
