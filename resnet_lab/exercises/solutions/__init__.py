"""Reference solutions to the book's exercises, one self-contained file per exercise: `<chapter>_<answer>.py`.

The files are read as text by `resnet_lab.exercises.show_solution` (and by the book's build, which shows them
in a collapsed dropdown); they are never imported, since each ends by calling its checker.
"""
