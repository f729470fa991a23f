# SQL migrations, applied in name order, once each.  Numbering ranges by area keep parallel work
# from colliding: 00xx core, 01xx images, 02xx containers, 03xx networks, 04xx volumes.
