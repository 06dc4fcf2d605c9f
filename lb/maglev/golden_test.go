package maglev

// Golden values of TestGolden (see there), at Seed "nlb/maglev/v1\x00".
// The permutation, the prefix and the first table hash were also computed
// by an independent transcription of §3.4's definitions and Pseudocode 1
// (Python, hashlib.sha256); the tests pass on amd64, 386 and ARMv7 (qemu).
const (
	goldenOffset = 14403
	goldenSkip   = 6997
)

var goldenPrefix = Entries{2, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 0, 1, 0, 0, 2, 2, 2, 0, 1, 1, 0, 1, 2, 1, 1, 2, 0, 0, 2, 0}

var goldenTables = []struct {
	n, m   int
	down   []int
	sha256 string
}{
	{3, DefaultSize, nil, "66dccf988230d46cc2ee2881d24afaa42fbd9f2ce8aaa1097ea18bb5d156ecae"},
	{7, DefaultSize, nil, "8c24fe98603bda04749024a96697fa0c31683e5686428d06dbb33ca9c73f29cb"},
	{7, DefaultSize, []int{3}, "85773ab98f1e281ef048dd3f1955bb8de094829f65e935c4fbe58ecbb1d7ce4b"},
	{7, DefaultSize, []int{0, 4, 6, 5, 2}, "94a2fadbb0aa118a11f01151e63b992ada1c0a5686829177ea2c50acabe34ad6"},
	{16, 65537, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, "f0e1113ca8a183af6c86e417df3893c407d1a2c03e873bb295db1034a015323c"},
	{2, 251, nil, "aa55f1664c726d1c4d83266ad0f7e348c2186927bff9e3be45da7a3808a19850"},
}
