//! The static shape of the synthetic marketplace: categories, their title vocabularies, brands,
//! price levels and the "semantic" query phrases whose words rarely appear in titles.
//!
//! Some tokens deliberately belong to several categories ("mouse" is a computer mouse, a toy and
//! a pet; "jaguar" is a car part and a plush toy; "apple" is a brand and a garden tree). A
//! lexical first pass cannot tell these apart, which is the point of the demo.

/// One category of listings.
#[derive(Debug)]
pub struct CategoryDef {
    pub name: &'static str,
    /// Relative share of the catalogue (and of users' interests).
    pub share: f64,
    /// Median listing price (log-normal centre) in currency units.
    pub median_price: f64,
    /// Log-normal spread of prices within the category.
    pub price_sigma: f64,
    /// Title vocabulary, most frequent first (titles draw from it with Zipf weights).
    pub tokens: &'static [&'static str],
    /// Brands sold in this category; their names appear in titles.
    pub brands: &'static [&'static str],
    /// Natural-language queries for this category that share few words with titles.
    pub phrases: &'static [&'static str],
}

pub const CATEGORIES: &[CategoryDef] = &[
    CategoryDef {
        name: "phones",
        share: 1.3,
        median_price: 180.0,
        price_sigma: 0.7,
        tokens: &[
            "phone",
            "smartphone",
            "unlocked",
            "128gb",
            "64gb",
            "screen",
            "case",
            "charger",
            "sim",
            "dual",
        ],
        brands: &["apple", "samsung", "nokia", "motorola"],
        phrases: &[
            "gift for a teenager",
            "something to call grandma",
            "upgrade my old mobile",
        ],
    },
    CategoryDef {
        name: "computers",
        share: 1.2,
        median_price: 320.0,
        price_sigma: 0.8,
        tokens: &[
            "laptop", "keyboard", "mouse", "monitor", "notebook", "ssd", "tablet", "desktop",
            "ram", "charger",
        ],
        brands: &["apple", "lenovo", "dell", "logitech"],
        phrases: &[
            "home office setup",
            "something for uni coursework",
            "work from home gear",
        ],
    },
    CategoryDef {
        name: "tv_audio",
        share: 0.9,
        median_price: 150.0,
        price_sigma: 0.8,
        tokens: &[
            "tv",
            "speaker",
            "headphones",
            "soundbar",
            "bluetooth",
            "remote",
            "hdmi",
            "amplifier",
            "bass",
            "television",
        ],
        brands: &["sony", "samsung", "bose", "lg"],
        phrases: &[
            "movie night at home",
            "loud music for parties",
            "something to watch football on",
        ],
    },
    CategoryDef {
        name: "cameras",
        share: 0.5,
        median_price: 240.0,
        price_sigma: 0.8,
        tokens: &[
            "camera",
            "lens",
            "tripod",
            "dslr",
            "mirrorless",
            "zoom",
            "flash",
            "film",
            "bag",
            "50mm",
        ],
        brands: &["canon", "nikon", "fujifilm", "sony"],
        phrases: &[
            "take pictures on holiday",
            "photography for beginners",
            "vlogging kit",
        ],
    },
    CategoryDef {
        name: "video_games",
        share: 1.0,
        median_price: 35.0,
        price_sigma: 0.9,
        tokens: &[
            "game",
            "console",
            "controller",
            "edition",
            "headset",
            "bundle",
            "disc",
            "cartridge",
            "switch",
            "collectors",
        ],
        brands: &["nintendo", "playstation", "xbox", "sega"],
        phrases: &[
            "something to play with friends online",
            "rainy day entertainment",
            "retro gaming",
        ],
    },
    CategoryDef {
        name: "toys",
        share: 1.1,
        median_price: 15.0,
        price_sigma: 0.8,
        tokens: &[
            "toy", "plush", "puzzle", "doll", "figure", "set", "mouse", "jaguar", "tank",
            "penguin", "car", "crane",
        ],
        brands: &["lego", "hasbro", "mattel", "playmobil"],
        phrases: &[
            "cool toys for boys",
            "birthday present for 5 year old",
            "something to keep kids busy",
        ],
    },
    CategoryDef {
        name: "baby_kids",
        share: 0.8,
        median_price: 40.0,
        price_sigma: 0.8,
        tokens: &[
            "pram",
            "stroller",
            "cot",
            "monitor",
            "highchair",
            "chair",
            "carrier",
            "bottle",
            "seat",
            "car",
        ],
        brands: &["chicco", "joie", "maxicosi"],
        phrases: &[
            "expecting our first baby",
            "newborn essentials",
            "things for a toddler",
        ],
    },
    CategoryDef {
        name: "womens_clothing",
        share: 1.6,
        median_price: 18.0,
        price_sigma: 0.7,
        tokens: &[
            "dress", "top", "jeans", "skirt", "coat", "blouse", "jumper", "cardigan", "tank", "bow",
        ],
        brands: &["zara", "mango", "hm"],
        phrases: &[
            "outfit for a wedding",
            "something warm for winter",
            "summer holiday clothes",
        ],
    },
    CategoryDef {
        name: "mens_clothing",
        share: 1.2,
        median_price: 22.0,
        price_sigma: 0.7,
        tokens: &[
            "shirt", "jacket", "jeans", "hoodie", "tshirt", "coat", "jumper", "suit", "shorts",
            "polo",
        ],
        brands: &["levis", "hugo", "superdry"],
        phrases: &[
            "gift for dad",
            "smart outfit for an interview",
            "casual weekend wear",
        ],
    },
    CategoryDef {
        name: "shoes",
        share: 1.0,
        median_price: 35.0,
        price_sigma: 0.7,
        tokens: &[
            "trainers", "boots", "shoes", "heels", "sandals", "leather", "size", "sneakers",
            "running", "pumps",
        ],
        brands: &["nike", "adidas", "puma", "clarks"],
        phrases: &[
            "comfy for walking all day",
            "something smart for the office",
            "festival footwear",
        ],
    },
    CategoryDef {
        name: "jewellery_watches",
        share: 0.7,
        median_price: 60.0,
        price_sigma: 1.0,
        tokens: &[
            "ring", "necklace", "watch", "bracelet", "earrings", "silver", "gold", "pendant",
            "chain", "case",
        ],
        brands: &["pandora", "casio", "seiko", "swarovski"],
        phrases: &[
            "anniversary present for my wife",
            "something sparkly",
            "gift for her",
        ],
    },
    CategoryDef {
        name: "furniture",
        share: 0.8,
        median_price: 110.0,
        price_sigma: 0.8,
        tokens: &[
            "sofa", "table", "chair", "desk", "wardrobe", "bed", "shelf", "drawers", "oak",
            "cabinet",
        ],
        brands: &["ikea", "habitat", "ercol"],
        phrases: &[
            "furnish my first flat",
            "somewhere to sit in the living room",
            "storage for a small bedroom",
        ],
    },
    CategoryDef {
        name: "kitchen",
        share: 0.8,
        median_price: 25.0,
        price_sigma: 0.8,
        tokens: &[
            "mug", "kettle", "toaster", "pan", "knife", "blender", "plates", "mixer", "cutlery",
            "glasses",
        ],
        brands: &["smeg", "kenwood", "tefal", "lecreuset"],
        phrases: &[
            "baking equipment for beginners",
            "housewarming gift",
            "morning coffee",
        ],
    },
    CategoryDef {
        name: "garden",
        share: 0.6,
        median_price: 40.0,
        price_sigma: 0.9,
        tokens: &[
            "plant", "pot", "mower", "hose", "shed", "bbq", "apple", "tree", "seeds", "planter",
        ],
        brands: &["bosch", "flymo", "weber"],
        phrases: &[
            "grow my own vegetables",
            "summer evenings outside",
            "tidy up the lawn",
        ],
    },
    CategoryDef {
        name: "sports",
        share: 0.8,
        median_price: 30.0,
        price_sigma: 0.9,
        tokens: &[
            "football",
            "racket",
            "dumbbells",
            "yoga",
            "mat",
            "weights",
            "tennis",
            "golf",
            "boots",
            "bow",
        ],
        brands: &["wilson", "decathlon", "adidas"],
        phrases: &[
            "getting fit in the new year",
            "something for the gym",
            "outdoor activities for teens",
        ],
    },
    CategoryDef {
        name: "bikes",
        share: 0.5,
        median_price: 180.0,
        price_sigma: 0.9,
        tokens: &[
            "bike", "helmet", "bicycle", "mountain", "road", "lock", "pump", "wheel", "saddle",
            "frame",
        ],
        brands: &["specialized", "trek", "brompton", "carrera"],
        phrases: &[
            "commute to work",
            "first wheels for my daughter",
            "weekend trail riding",
        ],
    },
    CategoryDef {
        name: "music",
        share: 0.5,
        median_price: 150.0,
        price_sigma: 1.0,
        tokens: &[
            "guitar", "keyboard", "amp", "bass", "drum", "piano", "mixer", "violin", "case", "bow",
        ],
        brands: &["fender", "yamaha", "gibson", "roland"],
        phrases: &["learn an instrument", "start a band", "gift for a musician"],
    },
    CategoryDef {
        name: "books",
        share: 1.1,
        median_price: 6.0,
        price_sigma: 0.6,
        tokens: &[
            "book",
            "novel",
            "paperback",
            "hardback",
            "fiction",
            "series",
            "cookbook",
            "edition",
            "guide",
            "collection",
        ],
        brands: &["penguin", "harpercollins"],
        phrases: &[
            "something to read on holiday",
            "bedtime stories",
            "learn to cook",
        ],
    },
    CategoryDef {
        name: "pets",
        share: 0.6,
        median_price: 20.0,
        price_sigma: 0.8,
        tokens: &[
            "dog", "cat", "collar", "lead", "cage", "bed", "aquarium", "hutch", "mouse", "tank",
        ],
        brands: &["kong", "trixie"],
        phrases: &[
            "new puppy essentials",
            "something for my cat",
            "keeping fish",
        ],
    },
    CategoryDef {
        name: "car_parts",
        share: 0.6,
        median_price: 55.0,
        price_sigma: 0.9,
        tokens: &[
            "tyres",
            "alloy",
            "wheel",
            "headlight",
            "wipers",
            "mats",
            "roof",
            "rack",
            "jaguar",
            "seat",
        ],
        brands: &["bosch", "halfords", "michelin"],
        phrases: &[
            "road trip essentials",
            "winter driving kit",
            "keep my motor tidy",
        ],
    },
];

/// Generic words any title may carry; they only lengthen titles (BM25 length normalisation).
pub const ADJECTIVES: &[&str] = &[
    "used", "vintage", "new", "boxed", "great", "rare", "large", "small", "black", "white", "red",
    "blue", "mint", "retro", "genuine",
];

/// Words from the semantic phrases that sellers occasionally put in titles of any category
/// ("gift idea", "kids"), so semantic queries match a few unrelated listings lexically.
pub const LEAK_WORDS: &[&str] = &[
    "gift",
    "boys",
    "kids",
    "home",
    "christmas",
    "summer",
    "winter",
    "office",
    "friends",
    "cool",
];
