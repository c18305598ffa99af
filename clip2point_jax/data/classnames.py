"""Class names as CLIP2Point prompts them (its zeroshot.py), in label order."""

MODELNET40 = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car",
    "chair", "cone", "cup", "curtain", "desk", "door", "dresser", "flower pot",
    "glass box", "guitar", "keyboard", "lamp", "laptop", "mantel", "monitor",
    "night stand", "person", "piano", "plant", "radio", "range hood", "sink",
    "sofa", "stairs", "stool", "table", "tent", "toilet", "tv stand", "vase",
    "wardrobe", "xbox",
)

# CLIP2Point keeps the folder name "night_stand" for ModelNet10.
MODELNET10 = (
    "bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand",
    "sofa", "table", "toilet",
)

SCANOBJECTNN = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf",
    "table", "bed", "pillow", "sink", "sofa", "toilet",
)
