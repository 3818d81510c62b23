"""A native 3D interactive network with prompt channels (after nnInteractive): the image,
the class's current mask and the user's hints as channels of one 3D U-Net, in a region
that comes from the object and zooms out until the object is inside it."""
